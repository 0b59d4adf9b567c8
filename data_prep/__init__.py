"Command-line data preparation: thin wrappers around notebook-exported functions (see nbs/16_data.prep.ipynb)."
