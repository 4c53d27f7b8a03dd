"""`make run` (`python -m demo`): the whole product on one machine, for trying it, not for running it.

Everything lives in the run folder `run/` (or `$DMS_RUN_DIR`). One module a job:

    __main__.py         the command line: run (the default), kill-primary, start-agent
    orchestrator.py     one run, in order: services, migrate and seed, agents, web app, workers,
                        beat; wait until healthy; the banner; watch; stop in order on Ctrl-C
    services.py         what the product talks to, provided by the demo: its own Redis, the mail
                        sink, snmptrapd, the appliances' stand-in pages
    agents.py           the four dms-agents: how each starts; kill-primary and start-agent
    banner.py           what is printed once everything is up
    processes.py        starting, probing and signalling child processes
    run_folder.py       the run folder's paths, pid files and logs
    mail_sink.py        the SMTP sink (its own process): one .eml file per message
    appliance_pages.py  the appliances' pages (their own process): which appliance, which role

The demo's data (users, clusters, agents' ports and tokens) is made by `manage.py seed_demo`
(cluster/management/commands/seed_demo.py), a management command because it needs the models.
The product never imports this package.
"""
