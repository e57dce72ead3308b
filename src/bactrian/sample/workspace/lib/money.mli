(** Amounts of money, held exactly as a whole number of cents. *)

type t

val zero : t
val of_cents : int -> t
val to_cents : t -> int
val add : t -> t -> t
val sub : t -> t -> t
val neg : t -> t

val sum : t list -> t
(** [sum ms] adds up [ms]; [zero] for the empty list. *)

val compare : t -> t -> int
val equal : t -> t -> bool
val is_zero : t -> bool

val of_string : string -> t option
(** [of_string "12.34"] is 1234 cents. Accepts a leading ['-'] and at most two
    decimals; anything else is [None]. *)

val to_string : t -> string
(** [to_string (of_cents 1234)] is ["12.34"]. *)

val pp : Format.formatter -> t -> unit
