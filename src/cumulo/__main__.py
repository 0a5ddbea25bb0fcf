"""``python -m cumulo``: the command line."""

from cumulo.cli import main

if __name__ == "__main__":
    main(prog_name="cumulo")
