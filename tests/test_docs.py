"The docs site: built offline from the real notebooks into a temporary folder, then looked at in headless Chromium."
import os, shutil, subprocess, sys, time, warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat, pytest, yaml
from bs4 import BeautifulSoup
from PIL import Image, ImageStat

from dass_nb.tools.site import check_sidebar, make_site, nav_tree, page_href, sidebar_contents

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
SHOTS = ROOT / '_site' / '_screenshots'  # kept after the run, for a person to look at
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']

def _notebooks(nbs): return sorted(p for p in nbs.rglob('*.ipynb') if not any(s[0] in '._' for s in p.relative_to(nbs).parts))

def _mirror(src:Path, dst:Path):
    "`src` rebuilt under `dst`: real folders (globs do not descend into symlinked ones), symlinked files."
    dst.mkdir()
    for p in src.iterdir():
        if p.name.startswith('.'): continue
        if p.is_dir() and not p.is_symlink(): _mirror(p, dst / p.name)
        else: (dst / p.name).symlink_to(p)

def _mirror_nbs(dst:Path)->Path:
    "A copy of nbs/ made of symlinks, plus a stand-in home page if nbs/index.ipynb does not exist yet."
    _mirror(NBS, dst)
    if not (dst / 'index.ipynb').exists():
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# dass_nb\n\n> Stand-in home page.')]),
                       dst / 'index.ipynb')
    return dst

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('docs')
    nbs, dest, cwd = _mirror_nbs(tmp / 'nbs'), tmp / 'site', os.getcwd()
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory, as `make docs` runs it
    try:
        t0 = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the sidebar has its own test below
            pages = make_site(dest, nbs, n_workers=2, quiet=True)
        print(f"site built in {time.time() - t0:.1f} s: {len(pages)} pages")
    finally: os.chdir(cwd)
    return dest, pages, nbs

def test_sidebar_lists_every_notebook():
    site_yml = yaml.safe_load((ROOT / '_quarto.yml').read_text())
    unlisted, missing = check_sidebar(site_yml, NBS, _notebooks(NBS))
    assert not unlisted, f"add these notebooks to the sidebar in _quarto.yml: {unlisted}"
    assert not missing, f"_quarto.yml's sidebar lists files that do not exist: {missing}"

def test_letter_after_the_number(tmp_path):
    "Notebooks slotted in with a letter after their number (`14a_...`) get nbdev's page name, a sidebar check and a title."
    assert page_href('14a_data.synthetic.styles.ipynb') == 'data.synthetic.styles.html'
    assert page_href('10a_data.png.ipynb') == 'data.png.html'
    names = ['14_data.synthetic.ipynb', '14a_data.synthetic.styles.ipynb', '10a_data.png.ipynb']
    for n in names: (tmp_path / n).write_text('{}')
    site_yml = {'website': {'sidebar': {'contents': names[:2]}}}
    assert check_sidebar(site_yml, tmp_path, sorted(tmp_path.glob('*.ipynb'))) == (['10a_data.png.ipynb'], [])
    tree = nav_tree(sidebar_contents(site_yml), {names[1]: 'Domain styles'}, 'data.synthetic.styles.html')
    assert [(n['text'], n['href'], n['active']) for n in tree] == [
        ('14_data.synthetic', 'data.synthetic.html', False), ('Domain styles', 'data.synthetic.styles.html', True)]

def test_quarto_files():
    assert (NBS / '_quarto.yml').resolve() == (ROOT / '_quarto.yml').resolve(), "nbs/_quarto.yml must be a symlink to ../_quarto.yml"
    site_yml = yaml.safe_load((ROOT / '_quarto.yml').read_text())
    assert site_yml['project']['type'] == 'website'
    assert site_yml['metadata-files'] == ['nbdev.yml']  # sidebar.yml's entries would be appended to ours
    assert 'custom_sidebar = False' in (ROOT / 'settings.ini').read_text()

def test_one_page_per_notebook(site):
    "A page per notebook, and one per paper recipe (its card)."
    from dass_nb.recipes import paper_recipes
    dest, pages, nbs = site
    want = {page_href(p.relative_to(nbs)) for p in _notebooks(nbs)} | {f'recipes/{n}.html' for n in paper_recipes()}
    assert {p.relative_to(dest).as_posix() for p in pages} == want
    assert (dest / 'index.html').exists() and (dest / 'core.html').exists()

def test_api_page_has_rendered_show_doc(site):
    dest = site[0]
    html = (dest / 'core.html').read_text()
    soup = BeautifulSoup(html, 'html.parser')
    assert soup.select_one('h1.title').get_text() == 'Core'
    assert 'Registries' in soup.select_one('p.description').get_text()
    assert soup.select_one('.sidebar li.active a')['href'] == 'core.html'
    entry = soup.find('h3', id='registry.create')  # show_doc(Registry.create), at the anchor _modidx.py uses
    assert entry is not None
    assert 'Call the constructor registered as' in entry.find_next('p').get_text()
    assert soup.find(id='seed_everything') is not None  # a show_doc that nbdev adds by itself
    assert '#|' not in html and 'nbdev_export()' not in html and 'show_doc(' not in html

def _local_links(page:Path, soup):
    for a in soup.find_all('a', href=True):
        u = urlsplit(a['href'])
        if not u.scheme and not a['href'].startswith('//'): yield a, (page.parent / unquote(u.path)) if u.path else page, u.fragment

def test_every_link_resolves(site):
    dest, pages, _ = site
    ids = {}
    def _ids(p):
        if p not in ids: ids[p] = {t['id'] for t in BeautifulSoup(p.read_text(), 'html.parser').find_all(id=True)}
        return ids[p]
    for page in pages:
        soup = BeautifulSoup(page.read_text(), 'html.parser')
        nav = soup.select('.navbar a[href], .sidebar a[href]')
        assert len(nav) >= 3, f"{page.name} has no navigation"
        for a, target, frag in _local_links(page, soup):
            assert target.resolve().is_file(), f"{page.name}: link {a['href']!r} ({a.get_text()!r}) points to no file"
            if frag and target.suffix == '.html': assert frag in _ids(target.resolve()), f"{page.name}: no #{frag} in {a['href']}"

def test_reports_show_their_stored_figures(site):
    "The report pages (analysis notebooks executed on real runs, `skip_exec`) carry their figures as stored."
    dest, pages, nbs = site
    reports = sorted((nbs / 'reports').glob('*.ipynb'))
    assert [p.stem for p in reports] == ['ccd', 'results', 'style_distribution', 'tsne']
    for nb in reports:
        soup = BeautifulSoup((dest / page_href(nb.relative_to(nbs))).read_text(), 'html.parser')
        assert soup.select_one('h1.title').get_text().endswith(': report')
        assert any(i['src'].startswith('data:image/png') for i in soup.find_all('img')), nb.name

def test_recipe_cards(site):
    "The recipes page shows one card per paper recipe, each field with its value and origin as the recipe holds them now."
    from dass_nb.recipes import paper_recipes, card_rows
    soup = BeautifulSoup((site[0] / 'recipes.html').read_text(), 'html.parser')
    tables = {t.find_previous(['h3']).get_text().strip().rstrip('¶'): t for t in soup.find_all('table') if t.find_previous(['h3'])}
    for name in paper_recipes():
        assert name in tables, f"no card for {name}: re-run nbs/53_recipes.ipynb"
        rows = [[td.get_text() for td in tr.find_all('td')] for tr in tables[name].find_all('tr')[1:]]
        want = [[f, v.replace('\\|', '|'), o] for f, v, o in card_rows(name)]
        assert rows == want, f"{name}'s card is stale: re-run nbs/53_recipes.ipynb"
        page = BeautifulSoup((site[0] / 'recipes' / f'{name}.html').read_text(), 'html.parser')   # its own page
        assert [[td.get_text() for td in tr.find_all('td')] for tr in page.find('table').find_all('tr')[1:]] == want

def test_no_external_resources(site):
    "Offline: stylesheets, scripts and images all come from the site folder or the page itself."
    dest, pages, _ = site
    for page in pages:
        soup = BeautifulSoup(page.read_text(), 'html.parser')
        for tag, attr in (('script', 'src'), ('link', 'href'), ('img', 'src'), ('iframe', 'src')):
            for t in soup.find_all(tag, **{attr: True}):
                u = t[attr]
                assert not urlsplit(u).scheme or u.startswith('data:'), f"{page.name} loads {u}"
                if not u.startswith('data:'): assert (page.parent / u).is_file(), f"{page.name}: missing {u}"

def test_cli_help(tmp_path):
    # a script file, as the `dass_site` console script is: call_parse reads sys.argv only in a real __main__ module
    script = tmp_path / 'dass_site.py'
    script.write_text('from dass_nb.tools.site import build_site\nbuild_site()\n')
    r = subprocess.run([sys.executable, str(script), '--help'], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert '--dest' in r.stdout and '--nbs' in r.stdout and '--execute' in r.stdout

def _chromium():
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe: return exe
    if os.environ.get('CI'): pytest.fail("chromium is not installed (tests/setup_test_deps.sh installs it)")
    pytest.skip("chromium is not installed; run tests/setup_test_deps.sh")

def _screenshot(exe, page:Path, png:Path, tmp:Path):
    cmd = [exe, *CHROMIUM_FLAGS, f'--user-data-dir={tmp / "chromium-profile"}', f'--screenshot={png}',
           '--window-size=1280,900', page.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0 and png.exists(), f"chromium failed ({r.returncode}):\n{r.stderr[-3000:]}"
    return Image.open(png).convert('RGB')

def _check_rendered(im:Image.Image, name:str):
    assert im.size == (1280, 900)
    small = im.resize((320, 225))  # fewer pixels to count; keeps text as dark specks
    n_colours = len(small.getcolors(320 * 225))
    std = sum(ImageStat.Stat(im).stddev) / 3
    grey = im.convert('L')
    dark = sum(grey.histogram()[:90]) / (1280 * 900)
    r, g, b = im.getpixel((640, 10))  # the navbar, drawn by styles.css
    assert n_colours > 50, f"{name}: only {n_colours} colours, the page looks blank"
    assert std > 20, f"{name}: pixel std {std:.1f}, the page looks blank"
    assert 0.005 < dark < 0.5, f"{name}: {dark:.1%} dark pixels; expected text"
    assert b > 180 and r < 120, f"{name}: navbar pixel {(r, g, b)} is not blue; styles.css did not load"

def test_pages_render_in_chromium(site, tmp_path):
    exe, dest = _chromium(), site[0]
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, page in (('index', 'index'), ('core', 'core'), ('recipe_card', 'recipes/spcl-gta5-cityscapes')):
        im = _screenshot(exe, dest / f'{page}.html', tmp_path / f'{name}.png', tmp_path)
        shutil.copy(tmp_path / f'{name}.png', SHOTS / f'{name}.png')
        _check_rendered(im, name)
