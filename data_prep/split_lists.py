"Command line: `python -m data_prep.split_lists --help`. The code lives in nbs/16_data.prep.ipynb (dass_nb.data.prep)."
from dass_nb.data.prep import split_lists

if __name__ == '__main__': split_lists()
