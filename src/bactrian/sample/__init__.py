"""The bundled sample OCaml workspace and its scripted editing session."""
