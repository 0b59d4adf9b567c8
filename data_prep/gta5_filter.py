"Command line: `python -m data_prep.gta5_filter --help`. The code lives in nbs/16_data.prep.ipynb (dass_nb.data.prep)."
from dass_nb.data.prep import gta5_filter

if __name__ == '__main__': gta5_filter()
