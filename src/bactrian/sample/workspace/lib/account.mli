(** Named accounts and their kinds, as in double-entry bookkeeping. *)

type kind = Asset | Liability | Equity | Income | Expense

type t

val make : string -> kind -> t
val name : t -> string
val kind : t -> kind

val kind_of_string : string -> kind option
(** ["asset"], ["liability"], ["equity"], ["income"] or ["expense"]. *)

val kind_to_string : kind -> string

val is_debit_normal : kind -> bool
(** Assets and expenses grow with debits (positive postings), the other kinds
    with credits (negative postings). *)
