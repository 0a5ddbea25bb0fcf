"""cumulo's runtime inside an instance: the wire to the pool (:mod:`.protocol`), the loop
that runs the handler (:mod:`.bootstrap`) and the zygote that forks instances
(:mod:`.zygote`). Standard library only."""
