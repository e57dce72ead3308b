let balances ledger =
  List.map
    (fun a -> (a, Ledger.balance ledger (Account.name a)))
    (Ledger.accounts ledger)

let balance_sheet ledger =
  let rows = balances ledger in
  let width =
    List.fold_left (fun w (a, _) -> max w (String.length (Account.name a))) 0 rows
  in
  rows
  |> List.map (fun (a, amount) ->
         Printf.sprintf "%s  %s  %s"
           (Util.pad_right width (Account.name a))
           (Util.pad_right 9 (Account.kind_to_string (Account.kind a)))
           (Util.pad_left 10 (Money.to_string amount)))
  |> String.concat "\n"
