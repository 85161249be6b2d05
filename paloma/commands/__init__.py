"""Subcommands of the `paloma` CLI, one thin module each around one library function (see paloma.cli, whose
`COMMANDS` maps each subcommand to its module).

    args       argument types shared by the subcommands (ranges checked by argparse before any work); public,
               and used by `paloma_baselines` for its own command line
    _output    formatting of intervals and percentages in the analysis commands' tables

Every other module is named after its subcommand (`eval` also registers `aggregate`): baselines, compare,
convert, decon, demo, domains, eval, ladder, merge, rank_stability, release, reweight, site, submissions,
submit, tokens, train.
"""
