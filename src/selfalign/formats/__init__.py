"""The data formats every layer shares, below all of them (it imports nothing of selfalign but
its errors): the one reader of data files (`rows.py`)."""
