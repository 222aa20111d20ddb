"""Assemblies run in the background under their own request's log fields, not their caller's."""

import io
import json
import logging
from typing import Any

from dsar_common.observability import JsonFormatter, log_fields
from dsar_service.app import Assemblies


class _Assembler:
    """Logs one line per assembly, as the real one does when the archive is ready."""

    async def assemble(self, request_id: str) -> None:
        logging.getLogger("dsar_service.requests.assembly").info("archive ready request=%s", request_id)

    def drop_parts_ahead(self) -> None:
        pass


async def test_an_assembly_logs_its_own_request_not_the_completion_that_scheduled_it() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("dsar_service.requests.assembly")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assemblies = Assemblies(_Assembler())  # type: ignore[arg-type]
        with log_fields(request_id="r-1", system="crm"):  # the collector, handling crm's completion
            assemblies.schedule("r-1")
        await assemblies.drain()
    finally:
        logger.removeHandler(handler)

    line: dict[str, Any] = json.loads(out.getvalue().splitlines()[0])
    assert line["message"] == "archive ready request=r-1"
    assert line["request_id"] == "r-1"
    assert "system" not in line
