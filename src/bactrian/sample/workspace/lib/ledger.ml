(* Both lists are kept newest first. *)
type t = { accounts : Account.t list; txns : Txn.t list }

let empty = { accounts = []; txns = [] }

let find_account t name =
  List.find_opt (fun a -> Account.name a = name) t.accounts

let open_account t account =
  match find_account t (Account.name account) with
  | Some _ ->
      Error (Printf.sprintf "account %s is already open" (Account.name account))
  | None -> Ok { t with accounts = account :: t.accounts }

let accounts t = List.rev t.accounts

let post t (txn : Txn.t) =
  if not (Txn.is_balanced txn) then
    Error
      (Printf.sprintf "transaction %S does not balance (off by %s)"
         txn.description
         (Money.to_string (Txn.total txn)))
  else
    match
      List.find_opt (fun name -> find_account t name = None) (Txn.accounts txn)
    with
    | Some name -> Error (Printf.sprintf "unknown account %s" name)
    | None -> Ok { t with txns = txn :: t.txns }

let transactions t = List.rev t.txns

let balance t name =
  List.fold_left
    (fun acc (txn : Txn.t) ->
      List.fold_left
        (fun acc (p : Txn.posting) ->
          if p.account = name then Money.add acc p.amount else acc)
        acc txn.postings)
    Money.zero t.txns
