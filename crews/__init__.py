"""Field crews, their skills and shifts, and the mobile generators they tow."""
