"""On PostgreSQL the stores of one process share one connection pool (``SharedPoolPostgresFactory``):
the applications, the views and the vault take connections from it, closing a store gives its
share back, and the pool closes with the last store. (The live topology test measures each
process's connections against the limit.)"""

from __future__ import annotations

from typing import Any

import pytest

from engine.application.engine import Engine
from tests.conftest import MakeEngine, settings_of
from tests.helpers import young_pro

pytestmark = pytest.mark.postgres


def pools(engine: Engine) -> set[Any]:
    stores = [engine.leads, engine.journeys, engine.deliveries, engine.referrals]
    datastores = [app.recorder.datastore for app in stores] + [v.datastore for v in engine.views.values()]  # type: ignore[attr-defined]
    if engine.leads.vault is not None:
        datastores.append(engine.leads.vault.datastore)  # type: ignore[attr-defined]
    return {d.pool for d in datastores}


@pytest.mark.parametrize("store", ["postgres"])
def test_a_process_stores_share_one_pool_that_closes_with_the_last(make_engine: MakeEngine, store: str) -> None:
    first = make_engine()
    [pool] = pools(first)
    limit = settings_of(first).pg_connections
    assert (pool.min_size, pool.max_size) == (2, limit)
    second = make_engine()  # a second engine in the same process: the same pool
    assert pools(second) == {pool}
    first.close()
    assert not pool.closed  # the second engine still uses it
    [out] = second.leads.capture_leads([young_pro(1)])
    report = second.run()
    assert report.requested >= 1 and second.leads.get_lead(out.lead_id) is not None  # type: ignore[arg-type]
    second.close()
    assert pool.closed
    second.close()  # closing again gives nothing back twice
    third = make_engine()  # after the last store closed, the next one opens a new pool
    [fresh] = pools(third)
    assert fresh is not pool and not fresh.closed
    assert third.leads.get_lead(out.lead_id) is not None  # type: ignore[arg-type]
