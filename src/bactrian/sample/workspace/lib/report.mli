(** Plain-text reports over a ledger. *)

val balances : Ledger.t -> (Account.t * Money.t) list
(** Every open account with its balance, in the order the accounts were opened. *)

val balance_sheet : Ledger.t -> string
(** One line per account: its name, kind and balance, aligned in columns. *)
