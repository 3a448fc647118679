"""Road networks from OpenStreetMap: graph building, speeds, snapping and route geometry.

Data flows one way: ``geodata`` never imports ``engine``. The road-network pipeline lands here;
until then the engine's travel comes from client matrices or geodesic distances.
"""
