#!/usr/bin/env python3
"""Write a seeded random Ising demo graph as CSV files predictd imports.

  entities.csv       entity_id,spin,field      ACTOR-000001.., spin +1/-1, field h ~ N(0, 0.1)
  relationships.csv  source,target,weight      weight J ~ U(0, 1), no self-loops

Standard library only. The same --seed always writes the same files. Floats are written
with repr() (shortest round-trip form), so a reader that parses IEEE doubles gets exactly
the generator's values.

  python3 scripts/gen-demo-graph.py --out data/demo
  python3 scripts/gen-demo-graph.py -n 100000 -m 500000 --out /tmp/big
"""
import argparse
import os
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", "-n", type=int, default=10_000, help="entities (default 10000)")
    ap.add_argument("--edges", "-m", type=int, default=50_000, help="relationships (default 50000)")
    ap.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    ap.add_argument("--out", default="data/demo", help="output folder (default data/demo)")
    a = ap.parse_args()
    if a.entities < 2 or a.edges < 0:
        ap.error("need at least 2 entities and a non-negative number of edges")

    rng = random.Random(a.seed)
    ids = [f"ACTOR-{i:06d}" for i in range(1, a.entities + 1)]
    os.makedirs(a.out, exist_ok=True)
    # Write to temporary names and rename, so an interrupted run never leaves half a file
    # that a later run would take for a finished one.
    ent = os.path.join(a.out, "entities.csv")
    rel = os.path.join(a.out, "relationships.csv")
    with open(ent + ".tmp", "w") as f:
        f.write("entity_id,spin,field\n")
        for e in ids:
            spin = 1 if rng.random() < 0.5 else -1
            f.write(f"{e},{spin},{rng.gauss(0.0, 0.1)!r}\n")
    with open(rel + ".tmp", "w") as f:
        f.write("source,target,weight\n")
        n = a.entities
        for _ in range(a.edges):
            u = rng.randrange(n)
            v = (u + rng.randrange(1, n)) % n  # never u itself
            f.write(f"{ids[u]},{ids[v]},{rng.random()!r}\n")
    os.replace(ent + ".tmp", ent)
    os.replace(rel + ".tmp", rel)
    print(f"wrote {a.entities} entities, {a.edges} relationships (seed {a.seed}) to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
