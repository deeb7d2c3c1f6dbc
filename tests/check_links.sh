#!/bin/sh
# The tree stands alone: every reference a reader follows resolves inside
# the repository, and nothing committed points at the machine it was made on.
#   - relative markdown links and images in *.md name a committed file or
#     folder (and an existing heading, for links with #anchor into *.md);
#   - path-like references in *.md (perf/run, `tests/support/helpers.h`)
#     whose first folder is one of the repository's name a committed file
#     or folder, or a program built from a committed .c file
#     (perf/group_scaling); templates (<date>, *, {md,json}, %s) and build
#     output (build*/, .build/) are not references;
#   - in every committed text file, references to *.md files and to docs/
#     resolve from the file's folder or the repository's top;
#   - no committed file names the design, style, benchmark or conformance
#     notes kept outside the repository by their upper-case file names, or
#     holds an absolute path under the machine's work, root or home folders.
# Usage: check_links.sh [SOURCE_ROOT]   (default: the repository holding this
# script). Lists what it checks from git when SOURCE_ROOT is a git checkout,
# else from the file system. Exit status: the number of problems (capped).
set -eu
root=${1:-$(dirname "$0")/..}
exec python3 - "$root" <<'PYTHON'
import os
import re
import subprocess
import sys

root = os.path.abspath(sys.argv[1])
problems = []


def problem(path, line, text):
    problems.append('%s:%d: %s' % (path, line, text))


def tracked_files():
    try:
        out = subprocess.run(['git', '-C', root, 'ls-files', '-z'], capture_output=True,
                             check=True).stdout.decode()
        files = [f for f in out.split('\0') if f]
        if files:
            return [f for f in files if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for top, dirs, names in os.walk(root):
        rel = os.path.relpath(top, root)
        dirs[:] = [d for d in dirs if not generated(d) and d != '.git']
        files += [os.path.normpath(os.path.join(rel, n)) for n in names]
    return files


def generated(component):
    return component.startswith('build') or component.startswith('.build')


files = tracked_files()
file_set = set(files)
dir_set = {os.path.dirname(f) for f in files}
for d in list(dir_set):
    while d:
        d = os.path.dirname(d)
        dir_set.add(d)
top_dirs = sorted({f.split('/')[0] for f in files if '/' in f})


# perf/group_scaling, tools/dgring-echo: the program built from a source.
programs = {os.path.splitext(f)[0] for f in files if f.endswith('.c')}


def exists(rel, program=False):
    rel = os.path.normpath(rel)
    return rel in file_set or rel in dir_set or (program and rel in programs)


def line_of(text, pos):
    return text.count('\n', 0, pos) + 1


# ---- Nothing that points outside the tree --------------------------------
# The names are assembled here so that this file does not contain them.
outside_notes = re.compile(rb'\b(?:%s)\.md\b' % b'|'.join(
    n.encode() for n in ('DES' + 'IGN', 'STY' + 'LE', 'BENCH' + 'MARK', 'CONFOR' + 'MANCE')))
machine_paths = re.compile(rb'(?<![\w.~-])/(?:%s)/' % b'|'.join(
    n.encode() for n in ('wo' + 'rk', 'ro' + 'ot', 'ho' + 'me')))

texts = {}
for f in files:
    with open(os.path.join(root, f), 'rb') as fh:
        data = fh.read()
    for pattern, what in ((outside_notes, 'names a note kept outside the repository'),
                          (machine_paths, "holds an absolute path of a machine")):
        for m in pattern.finditer(data):
            problem(f, data.count(b'\n', 0, m.start()) + 1,
                    '%s: %s' % (what, m.group().decode(errors='replace')))
    if b'\0' not in data:
        try:
            texts[f] = data.decode()
        except UnicodeDecodeError:
            pass


# ---- Markdown links ------------------------------------------------------

def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped,
    spaces as hyphens."""
    heading = re.sub(r'[`*_]|\[([^\]]*)\]\([^)]*\)', r'\1', heading.strip()).lower()
    return re.sub(r'[^\w\- ]', '', heading).replace(' ', '-')


def anchors(md):
    found, seen = set(), {}
    for line in strip_fences(texts.get(md, '')).splitlines():
        m = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            found.add(s if n == 0 else '%s-%d' % (s, n))
    return found


def strip_fences(text):
    """text with fenced code blocks blanked (lines kept)."""
    return re.sub(r'^(```|~~~).*?^\1[^\n]*$', lambda m: '\n' * m.group().count('\n'),
                  text, flags=re.S | re.M)


def strip_code(text):
    """text with fenced blocks and inline code blanked (lines kept)."""
    return re.sub(r'`[^`\n]*`', lambda m: ' ' * len(m.group()), strip_fences(text))


link = re.compile(r'!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)|'
                  r'^\s*\[[^\]\n]+\]:\s*(\S+)', re.M)
links = 0
for md in [f for f in files if f.endswith('.md') and f in texts]:
    body = strip_code(texts[md])
    for m in link.finditer(body):
        target = m.group(1) or m.group(2)
        if re.match(r'[a-zA-Z][a-zA-Z0-9+.-]*:', target):
            continue  # http:, https:, mailto:
        links += 1
        path, _, anchor = target.partition('#')
        rel = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
        if rel.startswith('..') or not exists(rel):
            problem(md, line_of(body, m.start()), 'link to a file not in the tree: ' + target)
        elif anchor and rel.endswith('.md') and anchor.lower() not in anchors(rel):
            problem(md, line_of(body, m.start()), 'link to a heading %s does not have: %s'
                    % (rel, target))


# ---- Path references -----------------------------------------------------
refs = 0


def check_reference(f, text, m, token):
    global refs
    after = text[m.end():m.end() + 1]
    token = token.rstrip('.,;:')
    if after in ('<', '*', '{', '$') or any(generated(c) for c in token.split('/')):
        return  # a template or build output, not a committed file
    refs += 1
    candidates = [token, os.path.join(os.path.dirname(f), token)]
    if not any(exists(c, program=True) for c in candidates
               if not os.path.normpath(c).startswith('..')):
        problem(f, line_of(text, m.start()), 'reference to a file not in the tree: ' + token)


in_markdown = re.compile(r'(?<![\w./~%%-])((?:%s)/[\w./+-]*)'
                         % '|'.join(map(re.escape, top_dirs)))
doc_reference = re.compile(r'(?<![\w./~%-])((?:docs/[\w./+-]*)|(?:[\w./+-]+\.md\b))')
for f, text in texts.items():
    if outside_notes.search(text.encode()):
        text = outside_notes.sub(lambda m: b' ' * len(m.group()),
                                 text.encode()).decode()  # reported above
    pattern = in_markdown if f.endswith('.md') else doc_reference
    for m in pattern.finditer(text):
        check_reference(f, text, m, m.group(1))
    if f.endswith('.md'):
        for m in re.finditer(r'(?<![\w./~%-])([\w.+-]+(?:/[\w.+-]+)*\.md)\b', text):
            if not m.group(1).split('/')[0] in top_dirs:
                check_reference(f, text, m, m.group(1))

for p in problems:
    print(p)
print('check_links: %d files, %d links, %d path references, %d problems'
      % (len(files), links, refs, len(problems)))
sys.exit(min(len(problems), 100))
PYTHON
