"Command line: `python -m data_prep.label_stats --help`. The code lives in nbs/16_data.prep.ipynb (dass_nb.data.prep)."
from dass_nb.data.prep import label_stats

if __name__ == '__main__': label_stats()
