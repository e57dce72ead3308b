(** Reads a ledger from a small line-based text format:

    {v
    # comments start with '#'
    open assets:cash asset
    open income:salary income
    txn 2024-01-31 Salary for January
      assets:cash 2500.00
      income:salary -2500.00
    v}

    The postings of a transaction are the indented lines after its [txn] line. *)

val parse : string -> (Ledger.t, string) result
(** The ledger the text describes, or its first error as ["line N: message"]. *)
