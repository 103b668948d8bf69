#!/usr/bin/env python3
"""Lists every public path of a crate from rustdoc's HTML: each item a module
page lists, and each `pub use` re-export it shows. One line per path, so two
paths to one type show as two lines.

    stack/api_paths.py target/doc/dynagate          # after cargo doc --no-deps
"""
import html
import re
import sys
from pathlib import Path

ITEM = re.compile(r'<dt><a class="(mod|struct|enum|fn|trait|type|constant|macro|static|attr|derive|union)" href="([^"]+)"[^>]*>(.*?)</a>')
REEXPORT = re.compile(r'<code>pub use (.*?);</code>', re.S)
TAG = re.compile(r'<[^>]+>')


def module_paths(root: Path, crate: str):
    paths = set()
    for index in root.rglob('index.html'):
        rel = index.parent.relative_to(root.parent)
        module = '::'.join(rel.parts)
        text = index.read_text(errors='replace')
        main = text.split('<section id="main-content"', 1)[-1]
        for kind, _href, name in ITEM.findall(main):
            name = html.unescape(TAG.sub('', name))
            paths.add(f'{module}::{name} ({kind})')
        for use in REEXPORT.findall(main):
            paths.add(f'{module}: pub use {html.unescape(TAG.sub("", use)).strip()}')
    return sorted(paths)


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else 'target/doc/dynagate')
    if not (root / 'index.html').exists():
        sys.exit(f'{root}/index.html not found: run `cargo doc --no-deps --all-features` first')
    for line in module_paths(root, root.name):
        print(line)


if __name__ == '__main__':
    main()
