"""`python -m foryou.cli`: the same entry point as the `foryou` script."""

from foryou.cli.main import main

if __name__ == "__main__":
    main()
