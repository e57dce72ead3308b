type t = int

let zero = 0
let of_cents c = c
let to_cents t = t
let add = ( + )
let sub = ( - )
let neg t = -t
let sum ms = List.fold_left add zero ms
let compare = Int.compare
let equal = Int.equal
let is_zero t = t = 0
let is_digits s = s <> "" && String.for_all (fun c -> c >= '0' && c <= '9') s

let of_string s =
  let s = String.trim s in
  let negative = String.length s > 0 && s.[0] = '-' in
  let body = if negative then String.sub s 1 (String.length s - 1) else s in
  let units, cents =
    match String.split_on_char '.' body with
    | [ units ] -> (units, "00")
    | [ units; cents ] when String.length cents = 1 -> (units, cents ^ "0")
    | [ units; cents ] -> (units, cents)
    | _ -> ("", "")
  in
  if is_digits units && is_digits cents && String.length cents = 2 then
    match int_of_string_opt units with
    | Some u ->
        let v = (u * 100) + int_of_string cents in
        Some (if negative then -v else v)
    | None -> None
  else None

let to_string t = Printf.sprintf "%d.%02d" (t / 100) (abs (t mod 100))
let pp ppf t = Format.pp_print_string ppf (to_string t)
