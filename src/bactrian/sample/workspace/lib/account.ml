type kind = Asset | Liability | Equity | Income | Expense
type t = { name : string; kind : kind }

let make name kind = { name; kind }
let name t = t.name
let kind t = t.kind

let kind_of_string = function
  | "asset" -> Some Asset
  | "liability" -> Some Liability
  | "equity" -> Some Equity
  | "income" -> Some Income
  | "expense" -> Some Expense
  | _ -> None

let kind_to_string = function
  | Asset -> "asset"
  | Liability -> "liability"
  | Equity -> "equity"
  | Income -> "income"
  | Expense -> "expense"

let is_debit_normal = function
  | Asset | Expense -> true
  | Liability | Equity | Income -> false
