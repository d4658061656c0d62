"""What runs in the client: submitting a run (:mod:`.submit`), waiting on its event stream
(:mod:`.wait`), the watchdog that notices dead workers (:mod:`.watchdog`) and what to run again
when one died (:mod:`.recovery`). Workers never import this package."""
