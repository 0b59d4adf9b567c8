"Render the built-in synthetic benchmark: `python -m data_prep.make_benchmark --root data` (see nbs/14_data.synthetic.ipynb)."
from dass_nb.data.synthetic import make_benchmark

if __name__ == '__main__': make_benchmark()
