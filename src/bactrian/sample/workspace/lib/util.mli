(** Small string helpers shared by the tally modules. *)

val split_words : string -> string list
(** [split_words s] splits [s] on spaces and tabs, dropping empty words. *)

val strip_comment : string -> string
(** [strip_comment line] is [line] up to its first ['#'], if any. *)

val pad_right : int -> string -> string
(** [pad_right n s] is [s] followed by spaces up to width [n]. *)

val pad_left : int -> string -> string
(** [pad_left n s] is [s] preceded by spaces up to width [n]. *)
