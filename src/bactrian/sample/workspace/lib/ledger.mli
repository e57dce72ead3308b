(** A ledger: the open accounts and the transactions posted to them. *)

type t

val empty : t

val open_account : t -> Account.t -> (t, string) result
(** Fails if an account of that name is already open. *)

val find_account : t -> string -> Account.t option

val accounts : t -> Account.t list
(** The open accounts, in the order they were opened. *)

val post : t -> Txn.t -> (t, string) result
(** Fails if the transaction does not balance or names an account that is not open. *)

val transactions : t -> Txn.t list
(** The posted transactions, oldest first. *)

val balance : t -> string -> Money.t
(** The sum of the postings to the named account ([Money.zero] if there are none). *)
