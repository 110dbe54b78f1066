"""foryou: a runnable, fast, inspectable re-creation of X's For You timeline."""

import logging

# Library code never prints: without this, Python's last-resort handler would write warnings to stderr.
logging.getLogger("foryou").addHandler(logging.NullHandler())
