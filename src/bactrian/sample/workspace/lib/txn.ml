type posting = { account : string; amount : Money.t }
type t = { date : string; description : string; postings : posting list }

let make ~date ~description postings = { date; description; postings }
let total t = Money.sum (List.map (fun p -> p.amount) t.postings)
let is_balanced t = t.postings <> [] && Money.is_zero (total t)

let accounts t =
  List.fold_left
    (fun seen p -> if List.mem p.account seen then seen else p.account :: seen)
    [] t.postings
  |> List.rev
