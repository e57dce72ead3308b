let read_file path =
  let ic = open_in_bin path in
  Fun.protect
    ~finally:(fun () -> close_in ic)
    (fun () -> really_input_string ic (in_channel_length ic))

let () =
  match Sys.argv with
  | [| _; path |] -> (
      match Tally.Parser.parse (read_file path) with
      | Ok ledger -> print_endline (Tally.Report.balance_sheet ledger)
      | Error msg ->
          prerr_endline (path ^ ": " ^ msg);
          exit 1)
  | _ ->
      prerr_endline "usage: tally_cli LEDGER-FILE";
      exit 2
