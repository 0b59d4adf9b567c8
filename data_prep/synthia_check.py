"Command line: `python -m data_prep.synthia_check --help`. The code lives in nbs/16_data.prep.ipynb (dass_nb.data.prep)."
from dass_nb.data.prep import synthia_check

if __name__ == '__main__': synthia_check()
