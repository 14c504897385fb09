"""The report of a study: a document model, its Markdown and HTML renderers, the analyses
that fill it (Pareto front, importances, crashes, hypervolume, validation tables), the plots,
and its command line (`python -m optimizer.report STUDY`).

    document.py   blocks (heading, paragraph, code, table, image) and text helpers
    render.py     blocks -> report.md / report.html
    pareto.py     the front against the baseline; the console table printed after a study
    sections.py   summary, baseline vs best, Pareto table
    importance.py crashes.py hypervolume.py validation.py   the analyses
    shadow.py     each real trial's stored prediction against its measurement
    plots.py      pareto.png, hypervolume.png
    build.py      assemble and write the files
    cli.py        the command line

Import from the submodules; this file re-exports nothing.
"""
