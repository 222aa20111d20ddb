"""Helpers for tests that run dsar as it runs in production: real processes, real servers.

    async with running_servers(folder) as servers:            # PostgreSQL (embedded), SecantusDB
        async with running_broker(folder) as broker:           # a Tansu broker we can kill and restart
            settings = deployment_settings(servers, broker, system_timeout_seconds=3)
            async with Deployment.started(settings, folder, systems=["policy"]) as deployment:
                deployment.service        # `python -m dsar_service.cli serve`, a Child
                deployment.connectors     # `python -m dsar_service.cli connectors run --system …`
                stub = deployment.stub    # a gRPC stub on the service

Modules: `environment` (Settings → a child's DSAR_* environment), `processes` (children and their
logs), `broker` (Tansu, raw topic dumps), `servers` (the databases, the population),
`deployment` (the service and connectors of one test), `rpc` (gRPC helpers), `archive`
(download, decrypt, compare with the population), `database` (the service's tables).
"""
