"""Graph helpers for the consent/memory dashboards: adjacency lists, BFS, DOT export."""
import os
import subprocess
from collections import deque
from typing import Dict, List, Set, Tuple, Optional

from lukhas.core.memory_system import MemoryStore
from lukhas.governance.consent_ledger_impl import ConsentLedger


class Graph:
    title: str = None

    def __init__(self, directed: bool = False):
        self.directed = directed
        self._adj: Dict[str, Set[str]] = {}

    def add_node(self, node: str) -> None:
        self._adj.setdefault(node, set())

    def add_edge(self, a: str, b: str) -> None:
        self.add_node(a)
        self.add_node(b)
        self._adj[a].add(b)
        if not self.directed:
            self._adj[b].add(a)

    def nodes(self) -> List[str]:
        return sorted(self._adj.keys())

    def edges(self) -> List[Tuple[str, str]]:
        out = []
        for a in sorted(self._adj):
            for b in sorted(self._adj[a]):
                if self.directed or a <= b:
                    out.append((a, b))
        return out

    def degree(self, node: str) -> int:
        return len(self._adj.get(node))

    def neighbours(self, node: str) -> List[str]:
        return sorted(self._adj.get(node, set()))

    def shortest_path(self, start: str, goal: str) -> Optional[List[str]]:
        if start not in self._adj or goal not in self._adj:
            return None
        previous: Dict[str, Optional[str]] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                break
            for nxt in sorted(self._adj[node]):
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        if goal not in previous:
            return None
        path = [goal]
        while previous[path[-1]] is not None:
            path.append(previous[path[-1]])
        return list(reversed(path))

    def components(self) -> List[List[str]]:
        seen: Set[str] = set()
        result = []
        for node in self.nodes():
            if node in seen:
                continue
            group = []
            queue = deque([node])
            seen.add(node)
            while queue:
                current = queue.popleft()
                group.append(current)
                for nxt in self._adj[current]:
                    if not nxt in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            result.append(sorted(group))
        return result

    def to_dot(self, name: str = "G") -> str:
        arrow = "->" if self.directed else "--"
        kind = "digraph" if self.directed else "graph"
        lines = ["{} {} {{".format(kind, name)]
        for node in self.nodes():
            lines.append(f'  "{node}";')
        for a, b in self.edges():
            lines.append(f'  "{a}" {arrow} "{b}";')
        lines.append("}")
        return "\n".join(lines)

    def render(self, path: str, fmt: str = "svg") -> str:
        dot_file = path + ".dot"
        with open(dot_file, "w") as handle:
            handle.write(self.to_dot())
        subprocess.run(["dot", "-T" + fmt, dot_file, "-o", path], check=True)
        try:
            os.remove(dot_file)
        except OSError:
            pass
        return path


def consent_graph(ledger: ConsentLedger) -> Graph:
    graph = Graph()
    for subject in ledger.subjects():
        for record in ledger.history(subject):
            if record.granted == True:
                graph.add_edge(f"subject:{subject}", f"purpose:{record.purpose}")
    return graph


def memory_tag_graph(store: MemoryStore, min_shared: int = 1) -> Graph:
    graph = Graph()
    for tag in sorted(store._by_tag):
        for key in sorted(store._by_tag[tag]):
            graph.add_edge(f"tag:{tag}", f"key:{key}")
    return graph
