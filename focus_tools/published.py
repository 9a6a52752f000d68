"""The published versions of the FOCUS release and the statistics published for each.

The release a user downloads may be any of them, or a later one: identify it from its own counts
(focus_tools.statistics.closest_published_version), never assume. A new version is one more entry
of PUBLISHED_VERSIONS, keyed by its number of images:

- "description": where it was published;
- "table1": images per class (columns in CLASS_NAMES order) for each attribute value, a
  multi-location image counted once per location (the paper's Table 1 layout);
- "table2": partition sizes (Table 2 layout: the total, P0, the groups P1, P2, P3 and their
  partitions), or None where none were published;
- "tables_3_and_4": whether the paper's accuracies and gaps (Tables 3 and 4) were measured on it.
"""

PUBLISHED_VERSIONS = {
    23902: {
        "description": "the version the paper's text describes (Kattakinda & Feizi 2022, Tables 1 and 2)",
        "table1": {
            "time": {
                "day": [1217, 2798, 1740, 1731, 2109, 2766, 2260, 1838, 1096, 2526],
                "night": [66, 304, 136, 167, 84, 66, 56, 57, 201, 58],
                "none": [32, 266, 99, 33, 997, 566, 88, 44, 370, 131],
            },
            "weather": {
                "cloudy": [189, 400, 314, 377, 79, 195, 248, 175, 18, 187],
                "foggy": [22, 115, 47, 106, 6, 44, 90, 55, 3, 48],
                "partly cloudy": [161, 363, 340, 307, 98, 184, 282, 159, 50, 170],
                "raining": [16, 161, 27, 10, 15, 11, 14, 3, 3, 21],
                "snowing": [13, 66, 3, 5, 29, 49, 49, 53, 0, 39],
                "sunny": [662, 1252, 850, 837, 768, 1266, 1183, 880, 503, 1297],
                "none": [252, 1011, 394, 289, 2195, 1649, 538, 614, 1090, 953],
            },
            "locations": {
                "forest": [185, 473, 179, 75, 90, 262, 519, 835, 117, 434],
                "grass": [355, 738, 397, 97, 532, 874, 1171, 1254, 293, 578],
                "indoors": [37, 311, 119, 3, 1451, 897, 76, 12, 37, 41],
                "rocks": [57, 119, 52, 67, 130, 114, 83, 86, 265, 192],
                "sand": [305, 596, 247, 181, 137, 451, 625, 186, 162, 315],
                "street": [702, 1811, 331, 96, 376, 386, 235, 74, 32, 124],
                "snow": [113, 308, 129, 157, 140, 357, 222, 306, 8, 192],
                "water": [65, 225, 354, 1728, 102, 433, 331, 135, 404, 611],
                "none": [90, 188, 673, 64, 524, 342, 245, 93, 555, 804],
            },
        },
        # As published, P0 + P1 + P2 + P3 = 23904, two more than the total (which Table 1 confirms).
        "table2": {
            "total": 23902, "P0": 16692,
            "P1": 6530, "P(t)": 752, "P(w)": 597, "P(l)": 5181,
            "P2": 647, "P(t,w)": 51, "P(w,l)": 440, "P(t,l)": 156,
            "P3": 35, "P(t,w,l)": 35,
        },
        "tables_3_and_4": True,
    },
    20815: {
        "description": "the version in the authors' repository notebooks (focus-dataset.ipynb); the ICML "
                       "camera-ready paper describes about 21K images",
        "table1": {
            "time": {
                "day": [1036, 2232, 1498, 1573, 1809, 2415, 1989, 1622, 931, 2298],
                "night": [50, 241, 128, 159, 72, 56, 60, 51, 180, 45],
                "none": [29, 212, 109, 29, 941, 503, 66, 34, 323, 124],
            },
            "weather": {
                "cloudy": [139, 301, 259, 324, 50, 151, 186, 95, 17, 171],
                "foggy": [27, 103, 56, 109, 7, 46, 105, 78, 1, 43],
                "partly cloudy": [145, 310, 305, 309, 111, 170, 284, 175, 44, 151],
                "raining": [10, 92, 19, 7, 11, 7, 14, 2, 3, 17],
                "snowing": [9, 39, 4, 3, 23, 39, 36, 44, 0, 32],
                "sunny": [538, 956, 694, 687, 639, 1083, 957, 742, 423, 1184],
                "none": [247, 884, 398, 322, 1981, 1478, 533, 571, 946, 869],
            },
            "locations": {
                "forest": [172, 378, 178, 79, 123, 247, 586, 916, 142, 400],
                "grass": [326, 651, 391, 105, 517, 804, 1142, 1255, 274, 541],
                "indoors": [31, 259, 125, 5, 1344, 790, 93, 10, 39, 40],
                "rocks": [43, 115, 55, 71, 137, 109, 92, 95, 239, 183],
                "sand": [295, 526, 239, 187, 143, 414, 662, 214, 152, 296],
                "street": [708, 1635, 389, 103, 405, 372, 417, 103, 29, 130],
                "snow": [88, 255, 110, 140, 127, 298, 206, 290, 7, 176],
                "water": [46, 211, 296, 1606, 93, 403, 296, 122, 355, 581],
                "none": [56, 96, 526, 51, 372, 279, 146, 49, 446, 699],
            },
        },
        # The notebook counted the partitions over 20,813 of the 20,815 rows: its total, as counted.
        "table2": {
            "total": 20813, "P0": 14144,
            "P1": 5974, "P(t)": 641, "P(w)": 448, "P(l)": 4885,
            "P2": 674, "P(t,w)": 43, "P(w,l)": 474, "P(t,l)": 157,
            "P3": 21, "P(t,w,l)": 21,
        },
        "tables_3_and_4": False,
    },
}

# The version the paper's text describes, under the names its tables had before a second version
# was known.
PUBLISHED_TABLE1 = PUBLISHED_VERSIONS[23902]["table1"]
PUBLISHED_TABLE2 = PUBLISHED_VERSIONS[23902]["table2"]
