"""Reading road data: OpenStreetMap files and road layers, tags, vehicle profiles, the network
build and its cache."""
