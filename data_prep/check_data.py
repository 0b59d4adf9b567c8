"Command line: `python -m data_prep.check_data --help`. The code lives in nbs/16_data.prep.ipynb (dass_nb.data.prep)."
from dass_nb.data.prep import check_data

if __name__ == '__main__': check_data()
