type pending = {
  line : int;
  date : string;
  description : string;
  postings : Txn.posting list;
}

let ( let* ) = Result.bind
let error n fmt = Printf.ksprintf (fun msg -> Error (Printf.sprintf "line %d: %s" n msg)) fmt

(* Post the transaction being read, if any. *)
let finish ledger = function
  | None -> Ok ledger
  | Some p -> (
      let txn =
        Txn.make ~date:p.date ~description:p.description (List.rev p.postings)
      in
      match Ledger.post ledger txn with
      | Ok ledger -> Ok ledger
      | Error msg -> error p.line "%s" msg)

let parse_line ledger pending n line =
  let indented = line <> "" && (line.[0] = ' ' || line.[0] = '\t') in
  match Util.split_words line with
  | [] -> Ok (ledger, pending)
  | [ account; amount ] when indented -> (
      match (pending, Money.of_string amount) with
      | None, _ -> error n "posting outside a transaction"
      | Some _, None -> error n "bad amount %S" amount
      | Some p, Some amount ->
          let posting = { Txn.account; amount } in
          Ok (ledger, Some { p with postings = posting :: p.postings }))
  | _ when indented -> error n "expected a posting: ACCOUNT AMOUNT"
  | [ "open"; name; kind ] -> (
      let* ledger = finish ledger pending in
      match Account.kind_of_string kind with
      | None -> error n "unknown account kind %S" kind
      | Some kind -> (
          match Ledger.open_account ledger (Account.make name kind) with
          | Ok ledger -> Ok (ledger, None)
          | Error msg -> error n "%s" msg))
  | "txn" :: date :: (_ :: _ as words) ->
      let* ledger = finish ledger pending in
      let description = String.concat " " words in
      Ok (ledger, Some { line = n; date; description; postings = [] })
  | word :: _ -> error n "unknown directive %S" word

let parse text =
  let rec go ledger pending n = function
    | [] -> finish ledger pending
    | line :: rest ->
        let* ledger, pending =
          parse_line ledger pending n (Util.strip_comment line)
        in
        go ledger pending (n + 1) rest
  in
  go Ledger.empty None 1 (String.split_on_char '\n' text)
