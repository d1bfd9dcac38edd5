# inventory.py -- stock keeping for the shop floor (legacy: do not break the callers!)
# ruff: noqa  -- legacy on purpose: the refactor workflow's input
#
# Items are kept in a module-level dict: name -> [quantity, unit price or None].

stock = {}


def add(name, qty, price=None):
    # adding an existing item keeps its old price unless a new one is given
    if qty <= 0:
        raise ValueError("qty must be positive")
    name = name.strip().lower()
    if name in stock:
        stock[name][0] = stock[name][0] + qty
        if price != None:
            stock[name][1] = price
    else:
        stock[name] = [qty, price]
    return stock[name][0]


def remove(name, qty):
    name = name.strip().lower()
    if not name in stock:
        return False
    if stock[name][0] < qty:
        return False
    stock[name][0] = stock[name][0] - qty
    if stock[name][0] == 0:
        del stock[name]
    return True


def value():
    total = 0
    for name in stock:
        if stock[name][1] != None:
            total = total + stock[name][0] * stock[name][1]
    return round(total, 2)


def low_stock(threshold=5):
    result = []
    for name in stock:
        if stock[name][0] < threshold:
            result.append(name)
    result.sort()
    return result


def report():
    lines = []
    for name in sorted(stock.keys()):
        qty = stock[name][0]
        price = stock[name][1]
        if price == None:
            lines.append(name + ": " + str(qty) + " @ n/a")
        else:
            lines.append(name + ": " + str(qty) + " @ " + ("%.2f" % price))
    return "\n".join(lines)


def load(text):
    # one item a line: name,qty[,price]; blank lines and # comments are skipped
    count = 0
    for line in text.splitlines():
        line = line.strip()
        if line == "" or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) == 2:
            add(parts[0], int(parts[1]))
        else:
            add(parts[0], int(parts[1]), float(parts[2]))
        count = count + 1
    return count


def clear():
    stock.clear()
