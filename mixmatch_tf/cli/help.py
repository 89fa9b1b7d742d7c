"""``--help`` of the programs: their own flags by group, one line each.

Absl's ``--help`` lists only the flags defined in the main module (none of ours: they
are defined in ``mixmatch_tf.flags``) and ``--helpfull`` lists about 400, absl's and
TensorFlow's among them; neither groups them or fits a flag on a line.
"""
import re
import textwrap

from absl import flags

FLAGS = flags.FLAGS


def first_sentence(text):
    """The help up to its first full stop that ends a sentence (not "et al.", "e.g.")."""
    text = " ".join(text.split())
    text = re.sub(r"^<[^>]*>: ", "", text)  # absl's own prefix of an enum's help
    for match in re.finditer(r"\. (?=[A-Z(])", text):
        if not re.search(r"\b(al|e\.g|i\.e|cf|vs|etc)$", text[:match.start()]):
            return text[:match.start() + 1]
    return text


def value_hint(flag, default=None):
    """``=<a|b|c>`` for a choice, ``=<default>`` otherwise; nothing for a bool."""
    if flag.flag_type() == "bool":
        return ""
    choices = getattr(flag.parser, "enum_values", None)
    if choices:
        return f"=<{'|'.join(choices)}>"
    default = flag.default if default is None else default
    if default is None or default == ():
        return "=..."
    if isinstance(default, (list, tuple)):
        default = ",".join(str(v) for v in default)
    return f"={default}"


def line(name, text=None, default=None):
    flag = FLAGS[name]
    text = first_sentence(flag.help) if text is None else text
    prefix = "--[no]" if flag.flag_type() == "bool" else "--"
    return f"  {prefix}{name}{value_hint(flag, default)}  {text}"


def print_help(doc, groups):
    """Prints the program's doc, then each ``(title, entries)`` group; an entry is a
    flag name (the first sentence of its help) or ``(name, text, default)``."""
    print(textwrap.dedent(doc).strip())
    for title, entries in groups:
        print(f"\n{title}:")
        for entry in entries:
            print(line(*entry) if isinstance(entry, tuple) else line(entry))
    print("\n--helpfull lists every flag with its whole help (absl's and TensorFlow's too); "
          "--flagfile=FILE reads flags from a file.")
