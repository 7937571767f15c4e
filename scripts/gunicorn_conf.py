"""gunicorn settings for `make serve` (and the benches, through scripts/serve.py's
command line): each worker starts its image render pool as soon as it has loaded the
app, so that the first series it is asked for does not wait for the fork server and
its processes (3.5 s measured on a busy 2-core machine), and nothing is started from
inside a request. The dev server (`make run`) and the tests start the pool on first
use instead (workflow/imaging/render_pool.py)."""


def post_worker_init(worker):
    from workflow.imaging import render_pool

    config = getattr(worker.wsgi, "config", None)
    if config is not None:
        render_pool.pool_for(config.get("IMAGE_RENDER_PROCESSES")).warm()
