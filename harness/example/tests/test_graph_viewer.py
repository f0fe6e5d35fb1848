from lukhas.visualization.graph_viewer import Graph


def test_shortest_path():
    graph = Graph()
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    assert graph.shortest_path("a", "c") == ["a", "b", "c"]
