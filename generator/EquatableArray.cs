using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;

namespace AotFlash.Generator
{
    /// <summary>An immutable array compared by value, so pipeline models stay equatable and cache well.</summary>
    internal readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IEnumerable<T> where T : IEquatable<T>
    {
        private readonly T[]? _items;
        public EquatableArray(IEnumerable<T> items) => _items = items.ToArray();
        public int Count => _items?.Length ?? 0;
        public T this[int i] => _items![i];
        public bool Equals(EquatableArray<T> other) => (_items ?? Array.Empty<T>()).SequenceEqual(other._items ?? Array.Empty<T>());
        public override bool Equals(object? obj) => obj is EquatableArray<T> o && Equals(o);
        public override int GetHashCode()
        {
            int h = 17;
            foreach (var x in this) h = h * 31 + x.GetHashCode();
            return h;
        }
        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(_items ?? Array.Empty<T>())).GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
