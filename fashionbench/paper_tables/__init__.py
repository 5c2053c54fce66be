"""Paper-specific table layouts, named from a ``paper.yaml`` table as
``renderer: fashionbench.paper_tables.<paper>:render_table`` (see :mod:`fashionbench.tables`)."""
