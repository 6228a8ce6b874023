actions = False
rest = True
shortcuts = False
