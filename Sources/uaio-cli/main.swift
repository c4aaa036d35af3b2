print("uaio")
