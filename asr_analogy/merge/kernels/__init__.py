"""One kernel per kind of merge: generalized task arithmetic (its presets: task arithmetic, TIES, DARE,
breadcrumbs, ...), linear averaging and SLERP. Each module declares its methods and their parameters next
to its maths; ``merge.methods`` lists them.
"""
