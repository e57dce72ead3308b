"""The scripted editing session played into a copy of the sample workspace (``tally``).

A developer works on the ledger library for about ten minutes of scripted time:

====  ======  =====================================================================
step  expect  what happens
====  ======  =====================================================================
0     green   the untouched sample
1     green   add ``Ledger.accounts_of_kind`` (.ml + .mli together: no red, no episode)
2     red     start ``Report.net_worth``, with a typo (``mathc``) that breaks parsing
3     green   fix the typo                                  → valley A
4     green   print the net worth in the command-line tool (green → green)
5     red     add ``Ledger.total_for_kind``: ``+`` on ``Money.t`` (type error)
6     red     use ``Money.add``, but the fold still starts from the int ``0``
7     green   start from ``Money.zero``                     → valley B
8     red     a new test: negative amounts under one unit lose their sign
9     green   fix ``Money.to_string``                       → valley C
10    red     ``Ledger.post`` gets a structured error type (interface first)
11    red     implement it in ledger.ml; parser.ml still expects a string
12    green   parser uses ``error_to_string``; a test for the new error  → valley D
13    red     start a ``Budget`` module using ``Txn.month``, which does not exist
14    red     declare ``Txn.month`` in txn.mli only
15    red     implement it wrongly (``String.sub`` without its length)
16    red     delete budget.mli; the session ends red (no episode)
====  ======  =====================================================================

Each valley (a red stretch between two greens) yields one ``fix`` (last red → first green)
and one ``change`` (green before → green after), see :data:`EXPECTED_EPISODES`. Green →
green steps and the final red stretch yield nothing.
"""

from __future__ import annotations

from bactrian.sample.script import Edit, ExpectedEpisode, Session, Step

# --- step 1: a new function and its signature -------------------------------------------

_ACCOUNTS_OF_KIND_MLI = Edit.replace(
    "lib/ledger.mli",
    "(** The open accounts, in the order they were opened. *)\n",
    "(** The open accounts, in the order they were opened. *)\n"
    "\n"
    "val accounts_of_kind : t -> Account.kind -> Account.t list\n"
    "(** The open accounts of one kind, in the order they were opened. *)\n",
)
_ACCOUNTS_OF_KIND_ML = Edit.replace(
    "lib/ledger.ml",
    "let accounts t = List.rev t.accounts\n",
    "let accounts t = List.rev t.accounts\n"
    "\n"
    "let accounts_of_kind t kind =\n"
    "  List.filter (fun a -> Account.kind a = kind) (accounts t)\n",
)

# --- steps 2-3: a typo that breaks parsing ------------------------------------------------

_NET_WORTH_MLI = Edit.replace(
    "lib/report.mli",
    "(** One line per account: its name, kind and balance, aligned in columns. *)\n",
    "(** One line per account: its name, kind and balance, aligned in columns. *)\n"
    "\n"
    "val net_worth : Ledger.t -> Money.t\n"
    "(** What the assets are worth after paying the liabilities. *)\n",
)
_NET_WORTH_ML_TYPO = Edit.replace(
    "lib/report.ml",
    '  |> String.concat "\\n"\n',
    '  |> String.concat "\\n"\n'
    "\n"
    "let net_worth ledger =\n"
    "  balances ledger\n"
    "  |> List.filter (fun (a, _) ->\n"
    "         mathc Account.kind a with\n"
    "         | Account.Asset | Account.Liability -> true\n"
    "         | Account.Equity | Account.Income | Account.Expense -> false)\n"
    "  |> List.map snd |> Money.sum\n",
)
_NET_WORTH_FIX_TYPO = Edit.replace(
    "lib/report.ml", "         mathc Account.kind a with\n", "         match Account.kind a with\n"
)

# --- step 4: use it ------------------------------------------------------------------------

_CLI_NET_WORTH = Edit.replace(
    "bin/tally_cli.ml",
    "      | Ok ledger -> print_endline (Tally.Report.balance_sheet ledger)\n",
    "      | Ok ledger ->\n"
    "          print_endline (Tally.Report.balance_sheet ledger);\n"
    '          Printf.printf "net worth: %s\\n"\n'
    "            (Tally.Money.to_string (Tally.Report.net_worth ledger))\n",
)

# --- steps 5-7: a type error fixed two edits later ------------------------------------------

_TOTAL_FOR_KIND_MLI = Edit.replace(
    "lib/ledger.mli",
    "(** The sum of the postings to the named account ([Money.zero] if there are none). *)\n",
    "(** The sum of the postings to the named account ([Money.zero] if there are none). *)\n"
    "\n"
    "val total_for_kind : t -> Account.kind -> Money.t\n"
    "(** The sum of the balances of all the accounts of one kind. *)\n",
)
_TOTAL_FOR_KIND_ML = Edit.replace(
    "lib/ledger.ml",
    "    Money.zero t.txns\n",
    "    Money.zero t.txns\n"
    "\n"
    "let total_for_kind t kind =\n"
    "  List.fold_left\n"
    "    (fun acc account -> acc + balance t (Account.name account))\n"
    "    0 (accounts_of_kind t kind)\n",
)
_TOTAL_USE_MONEY_ADD = Edit.replace(
    "lib/ledger.ml",
    "    (fun acc account -> acc + balance t (Account.name account))\n",
    "    (fun acc account -> Money.add acc (balance t (Account.name account)))\n",
)
_TOTAL_START_FROM_ZERO = Edit.replace(
    "lib/ledger.ml",
    "    0 (accounts_of_kind t kind)\n",
    "    Money.zero (accounts_of_kind t kind)\n",
)

# --- steps 8-9: a new test fails, then the code is fixed -------------------------------------

_TEST_NEGATIVE_CENTS = Edit.replace(
    "test/test_tally.ml",
    "let test_money_rejects () =\n",
    "let test_money_negative_cents () =\n"
    '  Alcotest.(check string) "minus five cents" "-0.05"\n'
    "    (Money.to_string (Money.of_cents (-5)));\n"
    '  Alcotest.(check string) "minus a dollar five" "-1.05"\n'
    "    (Money.to_string (Money.of_cents (-105)))\n"
    "\n"
    "let test_money_rejects () =\n",
)
_TEST_NEGATIVE_CENTS_REGISTER = Edit.replace(
    "test/test_tally.ml",
    '          Alcotest.test_case "rejects" `Quick test_money_rejects;\n',
    '          Alcotest.test_case "rejects" `Quick test_money_rejects;\n'
    '          Alcotest.test_case "negative cents" `Quick test_money_negative_cents;\n',
)
_FIX_MONEY_TO_STRING = Edit.replace(
    "lib/money.ml",
    'let to_string t = Printf.sprintf "%d.%02d" (t / 100) (abs (t mod 100))\n',
    "let to_string t =\n"
    '  let sign = if t < 0 then "-" else "" in\n'
    '  Printf.sprintf "%s%d.%02d" sign (abs t / 100) (abs t mod 100)\n',
)

# --- steps 10-12: a multi-file change across .mli / .ml / test ---------------------------------

_POST_ERROR_MLI = Edit.replace(
    "lib/ledger.mli",
    "val post : t -> Txn.t -> (t, string) result\n",
    "(** Why a transaction cannot be posted. *)\n"
    "type error =\n"
    "  | Unbalanced of Money.t  (** the postings sum to this instead of zero *)\n"
    "  | Unknown_account of string  (** a posting names an account that is not open *)\n"
    "\n"
    "val error_to_string : error -> string\n"
    "\n"
    "val post : t -> Txn.t -> (t, error) result\n",
)
_POST_ERROR_ML = Edit.replace(
    "lib/ledger.ml",
    "let post t (txn : Txn.t) =\n"
    "  if not (Txn.is_balanced txn) then\n"
    "    Error\n"
    '      (Printf.sprintf "transaction %S does not balance (off by %s)"\n'
    "         txn.description\n"
    "         (Money.to_string (Txn.total txn)))\n"
    "  else\n"
    "    match\n"
    "      List.find_opt (fun name -> find_account t name = None) (Txn.accounts txn)\n"
    "    with\n"
    '    | Some name -> Error (Printf.sprintf "unknown account %s" name)\n',
    "type error = Unbalanced of Money.t | Unknown_account of string\n"
    "\n"
    "let error_to_string = function\n"
    "  | Unbalanced off ->\n"
    '      Printf.sprintf "the transaction does not balance (off by %s)"\n'
    "        (Money.to_string off)\n"
    '  | Unknown_account name -> Printf.sprintf "unknown account %s" name\n'
    "\n"
    "let post t (txn : Txn.t) =\n"
    "  if not (Txn.is_balanced txn) then Error (Unbalanced (Txn.total txn))\n"
    "  else\n"
    "    match\n"
    "      List.find_opt (fun name -> find_account t name = None) (Txn.accounts txn)\n"
    "    with\n"
    "    | Some name -> Error (Unknown_account name)\n",
)
_PARSER_USES_ERROR_TO_STRING = Edit.replace(
    "lib/parser.ml",
    '      | Error msg -> error p.line "%s" msg)\n',
    '      | Error e -> error p.line "%s" (Ledger.error_to_string e))\n',
)
_TEST_UNKNOWN_ACCOUNT = Edit.replace(
    "test/test_tally.ml",
    "let test_balance_sheet () =\n",
    "let test_unknown_account () =\n"
    '  let ledger = parse_ok "open assets:cash asset" in\n'
    "  let txn =\n"
    '    Txn.make ~date:"2024-03-02" ~description:"Mystery money"\n'
    "      [\n"
    '        { Txn.account = "assets:cash"; amount = Money.of_cents 100 };\n'
    '        { Txn.account = "income:mystery"; amount = Money.of_cents (-100) };\n'
    "      ]\n"
    "  in\n"
    "  match Ledger.post ledger txn with\n"
    "  | Error (Ledger.Unknown_account name) ->\n"
    '      Alcotest.(check string) "account" "income:mystery" name\n'
    '  | Error e -> Alcotest.failf "wrong error: %s" (Ledger.error_to_string e)\n'
    '  | Ok _ -> Alcotest.fail "posted to an account that is not open"\n'
    "\n"
    "let test_balance_sheet () =\n",
)
_TEST_UNKNOWN_ACCOUNT_REGISTER = Edit.replace(
    "test/test_tally.ml",
    '      ("ledger", [ Alcotest.test_case "unbalanced" `Quick test_unbalanced ]);\n',
    '      ( "ledger",\n'
    "        [\n"
    '          Alcotest.test_case "unbalanced" `Quick test_unbalanced;\n'
    '          Alcotest.test_case "unknown account" `Quick test_unknown_account;\n'
    "        ] );\n",
)

# --- steps 13-16: a stretch that never builds ------------------------------------------------

_BUDGET_MLI = Edit.write(
    "lib/budget.mli",
    "(** Monthly spending per expense account. *)\n"
    "\n"
    "val monthly_spend : Ledger.t -> month:string -> (string * Money.t) list\n"
    '(** [monthly_spend ledger ~month:"2024-02"] is what each expense account\n'
    "    received in that month. *)\n",
)
_BUDGET_ML = Edit.write(
    "lib/budget.ml",
    "let monthly_spend ledger ~month =\n"
    "  Ledger.accounts_of_kind ledger Account.Expense\n"
    "  |> List.map (fun account ->\n"
    "         let name = Account.name account in\n"
    "         let spent =\n"
    "           Ledger.transactions ledger\n"
    "           |> List.filter (fun txn -> Txn.month txn = month)\n"
    "           |> List.concat_map (fun (txn : Txn.t) -> txn.postings)\n"
    "           |> List.filter (fun (p : Txn.posting) -> p.account = name)\n"
    "           |> List.map (fun (p : Txn.posting) -> p.amount)\n"
    "           |> Money.sum\n"
    "         in\n"
    "         (name, spent))\n",
)
_TXN_MONTH_MLI = Edit.replace(
    "lib/txn.mli",
    "(** The accounts the postings name, in order, without duplicates. *)\n",
    "(** The accounts the postings name, in order, without duplicates. *)\n"
    "\n"
    "val month : t -> string\n"
    '(** The ["YYYY-MM"] part of the date. *)\n',
)
_TXN_MONTH_ML_WRONG = Edit.replace(
    "lib/txn.ml",
    "  |> List.rev\n",
    "  |> List.rev\n\nlet month t = String.sub t.date 0\n",
)

SESSION = Session(
    name="tally-ledger-afternoon",
    steps=[
        Step(0.0, "The untouched sample workspace", [], "green"),
        Step(
            40.0,
            "Add Ledger.accounts_of_kind with its signature",
            [_ACCOUNTS_OF_KIND_ML, _ACCOUNTS_OF_KIND_MLI],
            "green",
        ),
        Step(
            85.0,
            "Start Report.net_worth (typo: 'mathc' breaks parsing)",
            [_NET_WORTH_MLI, _NET_WORTH_ML_TYPO],
            "red",
        ),
        Step(110.0, "Fix the 'mathc' typo", [_NET_WORTH_FIX_TYPO], "green"),
        Step(150.0, "Print the net worth in tally_cli", [_CLI_NET_WORTH], "green"),
        Step(
            195.0,
            "Add Ledger.total_for_kind (adds Money.t with +)",
            [_TOTAL_FOR_KIND_MLI, _TOTAL_FOR_KIND_ML],
            "red",
        ),
        Step(
            225.0,
            "Use Money.add (the fold still starts from the int 0)",
            [_TOTAL_USE_MONEY_ADD],
            "red",
        ),
        Step(250.0, "Start the fold from Money.zero", [_TOTAL_START_FROM_ZERO], "green"),
        Step(
            300.0,
            "Test: negative amounts under one unit keep their sign",
            [_TEST_NEGATIVE_CENTS, _TEST_NEGATIVE_CENTS_REGISTER],
            "red",
        ),
        Step(330.0, "Fix Money.to_string for negative amounts", [_FIX_MONEY_TO_STRING], "green"),
        Step(
            390.0,
            "Ledger.post returns a structured error (interface first)",
            [_POST_ERROR_MLI],
            "red",
        ),
        Step(440.0, "Implement Ledger.error and error_to_string", [_POST_ERROR_ML], "red"),
        Step(
            480.0,
            "Parser reports Ledger errors; test the unknown-account error",
            [_PARSER_USES_ERROR_TO_STRING, _TEST_UNKNOWN_ACCOUNT, _TEST_UNKNOWN_ACCOUNT_REGISTER],
            "green",
        ),
        Step(540.0, "Start a Budget module using Txn.month", [_BUDGET_MLI, _BUDGET_ML], "red"),
        Step(570.0, "Declare Txn.month in txn.mli", [_TXN_MONTH_MLI], "red"),
        Step(
            600.0, "Implement Txn.month (String.sub lacks its length)", [_TXN_MONTH_ML_WRONG], "red"
        ),
        Step(630.0, "Drop budget.mli for now", [Edit.delete("lib/budget.mli")], "red"),
    ],
)

EXPECTED_EPISODES: list[ExpectedEpisode] = [
    ExpectedEpisode(
        "fix", 2, 3, frozenset({"lib/report.ml"}), "fix the 'mathc' typo (syntax error)"
    ),
    ExpectedEpisode(
        "change",
        1,
        3,
        frozenset({"lib/report.ml", "lib/report.mli"}),
        "add Report.net_worth (valley A as a whole)",
    ),
    ExpectedEpisode(
        "fix",
        5,
        7,
        frozenset({"lib/ledger.ml"}),
        "type error fixed two edits later: the fold starts from Money.zero",
    ),
    ExpectedEpisode(
        "change",
        4,
        7,
        frozenset({"lib/ledger.ml", "lib/ledger.mli"}),
        "add Ledger.total_for_kind (valley B as a whole)",
    ),
    ExpectedEpisode(
        "fix",
        8,
        9,
        frozenset({"lib/money.ml"}),
        "a failing alcotest test fixed in Money.to_string",
    ),
    ExpectedEpisode(
        "change",
        7,
        9,
        frozenset({"lib/money.ml", "test/test_tally.ml"}),
        "test and fix negative amounts under one unit (valley C as a whole)",
    ),
    ExpectedEpisode(
        "fix",
        10,
        12,
        frozenset({"lib/parser.ml", "test/test_tally.ml"}),
        "callers adapted to Ledger.error",
    ),
    ExpectedEpisode(
        "change",
        9,
        12,
        frozenset({"lib/ledger.mli", "lib/ledger.ml", "lib/parser.ml", "test/test_tally.ml"}),
        "multi-file change: Ledger.post returns a structured error (valley D as a whole)",
    ),
]
