open Tally

let money = Alcotest.testable Money.pp Money.equal

let sample =
  {|# a tiny household ledger
open assets:cash asset
open liabilities:card liability
open income:salary income
open expenses:food expense

txn 2024-01-31 Salary for January
  assets:cash 2500.00
  income:salary -2500.00

txn 2024-02-02 Groceries on the card
  expenses:food 84.20
  liabilities:card -84.20
|}

let parse_ok text =
  match Parser.parse text with
  | Ok ledger -> ledger
  | Error msg -> Alcotest.failf "parse failed: %s" msg

let test_money_round_trip () =
  List.iter
    (fun s ->
      match Money.of_string s with
      | Some m -> Alcotest.(check string) s s (Money.to_string m)
      | None -> Alcotest.failf "%S did not parse" s)
    [ "0.00"; "12.34"; "-7.50"; "1000.01" ]

let test_money_rejects () =
  List.iter
    (fun s -> Alcotest.(check (option money)) s None (Money.of_string s))
    [ ""; "abc"; "1.234"; "1."; "--1" ]

let test_parse_balances () =
  let ledger = parse_ok sample in
  Alcotest.(check money) "cash" (Money.of_cents 250000)
    (Ledger.balance ledger "assets:cash");
  Alcotest.(check money) "card" (Money.of_cents (-8420))
    (Ledger.balance ledger "liabilities:card");
  Alcotest.(check int) "transactions" 2 (List.length (Ledger.transactions ledger))

let test_parse_errors () =
  let expect_error text expected =
    match Parser.parse text with
    | Ok _ -> Alcotest.failf "expected an error for %S" text
    | Error msg -> Alcotest.(check string) text expected msg
  in
  expect_error "open assets:cash cash" "line 1: unknown account kind \"cash\"";
  expect_error "frobnicate now" "line 1: unknown directive \"frobnicate\"";
  expect_error "  assets:cash 1.00" "line 1: posting outside a transaction";
  expect_error "open a asset\nopen a asset" "line 2: account a is already open"

let test_unbalanced () =
  let ledger = parse_ok "open assets:cash asset\nopen income:gift income" in
  let txn =
    Txn.make ~date:"2024-03-01" ~description:"Gift"
      [
        { Txn.account = "assets:cash"; amount = Money.of_cents 500 };
        { Txn.account = "income:gift"; amount = Money.of_cents (-400) };
      ]
  in
  match Ledger.post ledger txn with
  | Ok _ -> Alcotest.fail "an unbalanced transaction was posted"
  | Error _ -> ()

let test_balance_sheet () =
  let sheet = Report.balance_sheet (parse_ok sample) in
  Alcotest.(check (list string))
    "lines"
    [
      "assets:cash       asset         2500.00";
      "liabilities:card  liability      -84.20";
      "income:salary     income       -2500.00";
      "expenses:food     expense         84.20";
    ]
    (String.split_on_char '\n' sheet)

let () =
  Alcotest.run "tally"
    [
      ( "money",
        [
          Alcotest.test_case "round trip" `Quick test_money_round_trip;
          Alcotest.test_case "rejects" `Quick test_money_rejects;
        ] );
      ( "parser",
        [
          Alcotest.test_case "balances" `Quick test_parse_balances;
          Alcotest.test_case "errors" `Quick test_parse_errors;
        ] );
      ("ledger", [ Alcotest.test_case "unbalanced" `Quick test_unbalanced ]);
      ("report", [ Alcotest.test_case "balance sheet" `Quick test_balance_sheet ]);
    ]
