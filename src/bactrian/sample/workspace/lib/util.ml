let split_words s =
  String.map (fun c -> if c = '\t' then ' ' else c) s
  |> String.split_on_char ' '
  |> List.filter (fun w -> w <> "")

let strip_comment line =
  match String.index_opt line '#' with
  | Some i -> String.sub line 0 i
  | None -> line

let pad_right n s =
  let len = String.length s in
  if len >= n then s else s ^ String.make (n - len) ' '

let pad_left n s =
  let len = String.length s in
  if len >= n then s else String.make (n - len) ' ' ^ s
