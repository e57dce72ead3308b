(** Transactions: a date, a description and postings that must sum to zero. *)

type posting = { account : string; amount : Money.t }
type t = { date : string; description : string; postings : posting list }

val make : date:string -> description:string -> posting list -> t

val total : t -> Money.t
(** The sum of the postings; zero when the transaction balances. *)

val is_balanced : t -> bool

val accounts : t -> string list
(** The accounts the postings name, in order, without duplicates. *)
