"""The README's Python example runs, and each commented result is what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_results():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    env: dict = {}
    checked = 0
    for line in block.splitlines():
        code, _, comment = line.partition("  # ")
        m = re.match(r"(\w+) = (.+)", code.strip())
        if comment and comment.strip()[0] in "-[(0123456789":
            expected_text = re.split(r":| \(", comment.strip(), maxsplit=1)[0]
            if m:
                exec(code.strip(), env)
                value = env[m.group(1)]
            else:
                value = eval(code.strip(), env)
            assert value == eval(expected_text, env), line
            checked += 1
        else:
            exec(code.strip(), env)
    assert checked >= 6
