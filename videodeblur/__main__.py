"""``python -m videodeblur``: the same entry point as the ``videodeblur`` console script."""
from videodeblur.cli import main

if __name__ == "__main__":
    main()
